"""BigEye Pro: its credit API services (top-ups, promotions, jobs)."""
