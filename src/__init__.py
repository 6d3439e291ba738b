"""The U-Net model, its training and its prediction (TensorFlow is imported by ``src.backend`` alone)."""
