"""llmjp-ablate: corpus ablations as two-level fractional factorial designs.

words.py (effects as letter words, their products), design.py (2^(k-p) designs, generators,
defining relation, resolution), aliases.py (alias structure of main effects and two-factor
interactions), factors.py (a factor is a mixture change), plan.py (the runs, their override files
and plan.json), results.py (each run's response), analyze.py (the main-effects model), report.py
(table and bar chart). How a design is chosen and what analyze computes: README.md here.
"""
