"""Running a grid: the request, planning, units and jobs, executors, training and scoring one unit,
progress, timing and locking; and bench evaluate's re-scoring of trained models."""
