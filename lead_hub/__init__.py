"""lead_hub: predict which pretrained vision model fine-tunes best on your data."""
