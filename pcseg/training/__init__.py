"""The training loop (``loop``), whole-room validation (``evaluate``), run-directory files
(``run_dir``) and plots (``plots``)."""
