"""farfeed.store"""
