"""farfeed.checkpoint"""
