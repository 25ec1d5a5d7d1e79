"""Finding where the numbers go wrong: ``graphkit compare`` (tensor by tensor, msit's metrics)
and ``graphkit bisect`` (the first pass, and site, that breaks a model)."""
