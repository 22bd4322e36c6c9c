"""Training side of automix: multitrack datasets, console-setting priors, synthetic stems.

Nothing under ``training/`` is imported by the ``automix`` package itself (data flows one way).
"""
