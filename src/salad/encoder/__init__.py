"""Contrastive event encoders (paper A: particle transformer + SupCon + KL; paper B: MLP /
Transformer encoders with SimCLR, supervised SimCLR, VICReg + CE).

Public API:
  setups.resolve_setup(encoder_cfg, setup, sample_groups) -> resolved training settings
  train.train_encoder(cfg, preselected, split, seed, model_path, history_path, plot_path)
  train.load_checkpoint(path) -> (model, normaliser, checkpoint)
  embed.embed(model_path, preselected, output, latent='sample') -> frame of event_id, z0..z{d-1}
Stages: `python -m salad train-encoder ...`, `python -m salad embed ...`.
"""
