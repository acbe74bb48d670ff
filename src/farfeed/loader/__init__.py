"""farfeed.loader"""
