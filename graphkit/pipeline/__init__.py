"""Running a recipe: the source model, the pass pipeline and its manager, the instruments around
every pass, parity against the unmodified model, expectations, and ``graphkit apply``."""
