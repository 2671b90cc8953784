"""Training: one loop for pretraining and fine-tuning, resumable bit-exactly, single process or torchrun."""
