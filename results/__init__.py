"""Reading outputs: metrics, report, fits and plots. Never runs chunks."""
