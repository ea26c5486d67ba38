"""One account's sweep: the pipeline object, its stages, and the stop that reaches them."""
