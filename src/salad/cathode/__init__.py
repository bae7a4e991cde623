"""CATHODE in the contrastive latent space (paper A, section III.B).

Stages (each a module with `cli(argv)`):
- `flow`      fit_flow:  conditional normalizing flow p(z | m_yy) on sideband data
              (`CathodeFlow`: fit / sample / log_prob / save / load).
- `template`  sample_sr: background template in the SR (flow samples + simulated SM Higgs).
- `classify`  classify:  k-fold CWoLa LightGBM (SR data vs template) + references.
- `evaluate`  evaluate:  SIC, significance, 3 sigma injection, sculpting check, tables.
- `run`       one job per dataset: flow -> template -> classify (the package's orchestrator).
`data` reads CATHODE's inputs through salad.contracts; helpers for parsers, logging and seeds
live in salad.cli.
"""
