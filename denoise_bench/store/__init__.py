"""Files a run leaves beside its records: sample images, and where output folders go."""
