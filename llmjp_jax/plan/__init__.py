"""llmjp-plan: rank parallelism layouts by predicted memory and speed before any cluster runs them.

hardware.py (the device table), layout.py (one layout), layouts.py (enumeration through
`config.validate`), memory.py and timing.py (the models), planner.py (ranking), report.py (tables,
JSON), check.py (compile the top layouts and compare). The model is documented in README.md here.
"""
