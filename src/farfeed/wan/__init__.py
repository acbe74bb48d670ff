"""farfeed.wan"""
