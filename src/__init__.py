"""The U-Net model, its training and its prediction."""
