"""The evaluation panel: judges that did not make the images they judge.

Generators must never import this package or load its models (a test enforces
both), so that nothing can be tuned to fool the judges.
"""
