"""Application services: load policy, run intake batches through processors and storage."""
