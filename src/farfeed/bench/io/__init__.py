"""`farfeed bench io`: the loader feeding an emulated accelerator across emulated distance."""
