"""The adaptive solver's belief about one problem: a Beta prior from the predictor, updated by the answers
sampled and by the evidence scores carry."""
