# signal_agnostic rules: filled in by the stage's issue
