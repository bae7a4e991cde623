# encoder rules: filled in by the stage's issue
