"""`farfeed bench train` and `farfeed demo`: one training job local, near and across the link."""
