"""farfeed.format"""
