"""salad: Signal-Aware LAtent anomaly Detection.

A Snakemake-managed pipeline for weakly supervised anomaly detection in diphoton
events: contrastive encoders map events to a low-dimensional latent space in which
CATHODE (sideband flow + CWoLa classifiers) searches for a localised excess in m_yy.
Every stage is one module with a `cli(argv)` entry, called as `python -m salad <stage>`.
"""

__version__ = "0.1.0"
