"""Checkpoint I/O: reading and writing weights, kept apart from the model a learner reads.

- safetensors_io: the safetensors reader and writer (header checks, bfloat16) and WeightsError;
- torch_pickle: the allowlist pytorch_model.bin reader (never unpickles) and converter;
- hub: a local folder or a Hugging Face Hub id -> a folder on disk;
- state_dict: finding a folder's weight files, checking names and shapes against the
  architecture, and building the nested parameter tree model.py reads.
"""
