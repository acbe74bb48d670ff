"""farfeed.server"""
