"""Training plumbing shared by every trainer (pretraining, BLD, GKD): one optimiser config, one learning-rate
schedule and one AdamW builder.

`config` is plain pydantic and `schedule` plain Python, so configs import them without importing torch.
"""
