"""farfeed.bench"""
