"""`farfeed bench format`: pack throughput and index load time."""
