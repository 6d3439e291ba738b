"""Direct ports of the published retina-unet functions (orobix/retina-unet, lib/ and src/), kept literal.

They are the reference the tests (tests/) check the re-implementation against, and the baseline the
benchmarks (benchmarks/) measure it against: per-image, per-patch and per-pixel Python loops, float64
arrays from np.empty/np.zeros, cv2.LUT, float64 one-hot targets, exactly as published (Python 2 integer
divisions written as //). Do not optimise them. Pure numpy, OpenCV and scikit-learn; the project's own
pipeline (lib/ and src/) never imports this module.
"""

import cv2
import numpy as np

# ---------------------------------------------------------------- lib/pre_processing.py, help_functions.py


def rgb2gray(rgb):
    assert len(rgb.shape) == 4
    assert rgb.shape[1] == 3
    bn_imgs = rgb[:, 0, :, :] * 0.299 + rgb[:, 1, :, :] * 0.587 + rgb[:, 2, :, :] * 0.114
    bn_imgs = np.reshape(bn_imgs, (rgb.shape[0], 1, rgb.shape[2], rgb.shape[3]))
    return bn_imgs


def dataset_normalized(imgs):
    assert len(imgs.shape) == 4
    assert imgs.shape[1] == 1
    imgs_normalized = np.empty(imgs.shape)
    imgs_std = np.std(imgs)
    imgs_mean = np.mean(imgs)
    imgs_normalized = (imgs - imgs_mean) / imgs_std
    for i in range(imgs.shape[0]):
        imgs_normalized[i] = (
            (imgs_normalized[i] - np.min(imgs_normalized[i]))
            / (np.max(imgs_normalized[i]) - np.min(imgs_normalized[i]))
        ) * 255
    return imgs_normalized


def clahe_equalized(imgs):
    assert len(imgs.shape) == 4
    assert imgs.shape[1] == 1
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    imgs_equalized = np.empty(imgs.shape)
    for i in range(imgs.shape[0]):
        imgs_equalized[i, 0] = clahe.apply(np.array(imgs[i, 0], dtype=np.uint8))
    return imgs_equalized


def adjust_gamma(imgs, gamma=1.0):
    assert len(imgs.shape) == 4
    assert imgs.shape[1] == 1
    inv_gamma = 1.0 / gamma
    table = np.array([((i / 255.0) ** inv_gamma) * 255 for i in np.arange(0, 256)]).astype("uint8")
    new_imgs = np.empty(imgs.shape)
    for i in range(imgs.shape[0]):
        new_imgs[i, 0] = cv2.LUT(np.array(imgs[i, 0], dtype=np.uint8), table)
    return new_imgs


def my_PreProc(data):
    assert len(data.shape) == 4
    assert data.shape[1] == 3
    train_imgs = rgb2gray(data)
    train_imgs = dataset_normalized(train_imgs)
    train_imgs = clahe_equalized(train_imgs)
    train_imgs = adjust_gamma(train_imgs, 1.2)
    train_imgs = train_imgs / 255.0
    return train_imgs


# ---------------------------------------------------------------- lib/extract_patches.py


def is_patch_inside_FOV(x, y, img_w, img_h, patch_h):
    x_ = x - int(img_w / 2)
    y_ = y - int(img_h / 2)
    R_inside = 270 - int(patch_h * np.sqrt(2.0) / 2.0)
    radius = np.sqrt((x_ * x_) + (y_ * y_))
    return radius < R_inside


def paint_border(data, patch_h, patch_w):
    img_h = data.shape[2]
    img_w = data.shape[3]
    new_img_h = img_h if img_h % patch_h == 0 else ((int(img_h) // int(patch_h)) + 1) * patch_h
    new_img_w = img_w if img_w % patch_w == 0 else ((int(img_w) // int(patch_w)) + 1) * patch_w
    new_data = np.zeros((data.shape[0], data.shape[1], new_img_h, new_img_w))
    new_data[:, :, 0:img_h, 0:img_w] = data[:, :, :, :]
    return new_data


def paint_border_overlap(full_imgs, patch_h, patch_w, stride_h, stride_w):
    assert len(full_imgs.shape) == 4
    img_h = full_imgs.shape[2]
    img_w = full_imgs.shape[3]
    leftover_h = (img_h - patch_h) % stride_h
    leftover_w = (img_w - patch_w) % stride_w
    if leftover_h != 0:
        tmp_full_imgs = np.zeros((full_imgs.shape[0], full_imgs.shape[1], img_h + (stride_h - leftover_h), img_w))
        tmp_full_imgs[0 : full_imgs.shape[0], 0 : full_imgs.shape[1], 0:img_h, 0:img_w] = full_imgs
        full_imgs = tmp_full_imgs
    if leftover_w != 0:
        tmp_full_imgs = np.zeros(
            (full_imgs.shape[0], full_imgs.shape[1], full_imgs.shape[2], img_w + (stride_w - leftover_w))
        )
        tmp_full_imgs[0 : full_imgs.shape[0], 0 : full_imgs.shape[1], 0 : full_imgs.shape[2], 0:img_w] = full_imgs
        full_imgs = tmp_full_imgs
    return full_imgs


def extract_ordered_overlap(full_imgs, patch_h, patch_w, stride_h, stride_w):
    assert len(full_imgs.shape) == 4
    img_h = full_imgs.shape[2]
    img_w = full_imgs.shape[3]
    assert (img_h - patch_h) % stride_h == 0 and (img_w - patch_w) % stride_w == 0
    N_patches_img = ((img_h - patch_h) // stride_h + 1) * ((img_w - patch_w) // stride_w + 1)
    N_patches_tot = N_patches_img * full_imgs.shape[0]
    patches = np.empty((N_patches_tot, full_imgs.shape[1], patch_h, patch_w))
    iter_tot = 0
    for i in range(full_imgs.shape[0]):
        for h in range((img_h - patch_h) // stride_h + 1):
            for w in range((img_w - patch_w) // stride_w + 1):
                patch = full_imgs[
                    i, :, h * stride_h : (h * stride_h) + patch_h, w * stride_w : (w * stride_w) + patch_w
                ]
                patches[iter_tot] = patch
                iter_tot += 1
    assert iter_tot == N_patches_tot
    return patches


def recompone_overlap(preds, img_h, img_w, stride_h, stride_w):
    assert len(preds.shape) == 4
    assert preds.shape[1] == 1 or preds.shape[1] == 3
    patch_h = preds.shape[2]
    patch_w = preds.shape[3]
    N_patches_h = (img_h - patch_h) // stride_h + 1
    N_patches_w = (img_w - patch_w) // stride_w + 1
    N_patches_img = N_patches_h * N_patches_w
    assert preds.shape[0] % N_patches_img == 0
    N_full_imgs = preds.shape[0] // N_patches_img
    full_prob = np.zeros((N_full_imgs, preds.shape[1], img_h, img_w))
    full_sum = np.zeros((N_full_imgs, preds.shape[1], img_h, img_w))
    k = 0
    for i in range(N_full_imgs):
        for h in range((img_h - patch_h) // stride_h + 1):
            for w in range((img_w - patch_w) // stride_w + 1):
                full_prob[i, :, h * stride_h : (h * stride_h) + patch_h, w * stride_w : (w * stride_w) + patch_w] += (
                    preds[k]
                )
                full_sum[i, :, h * stride_h : (h * stride_h) + patch_h, w * stride_w : (w * stride_w) + patch_w] += 1
                k += 1
    assert k == preds.shape[0]
    assert np.min(full_sum) >= 1.0
    final_avg = full_prob / full_sum
    return final_avg, full_sum


def inside_FOV_DRIVE(i, x, y, DRIVE_masks):
    assert len(DRIVE_masks.shape) == 4
    assert DRIVE_masks.shape[1] == 1
    if x >= DRIVE_masks.shape[3] or y >= DRIVE_masks.shape[2]:
        return False
    return DRIVE_masks[i, 0, y, x] > 0


def pred_only_FOV(data_imgs, data_masks, original_imgs_border_masks):
    """Published: note the loops walk x (columns) outside y (rows), i.e. column by column."""
    assert len(data_imgs.shape) == 4 and len(data_masks.shape) == 4
    height = data_imgs.shape[2]
    width = data_imgs.shape[3]
    new_pred_imgs = []
    new_pred_masks = []
    for i in range(data_imgs.shape[0]):
        for x in range(width):
            for y in range(height):
                if inside_FOV_DRIVE(i, x, y, original_imgs_border_masks):
                    new_pred_imgs.append(data_imgs[i, :, y, x])
                    new_pred_masks.append(data_masks[i, :, y, x])
    return np.asarray(new_pred_imgs), np.asarray(new_pred_masks)


def extract_random(full_imgs, full_masks, patch_h, patch_w, n_patches, rng):
    """Published random training patches, one Python iteration per patch, float64 arrays."""

    patches = np.empty((n_patches, full_imgs.shape[1], patch_h, patch_w))
    patches_masks = np.empty((n_patches, full_masks.shape[1], patch_h, patch_w))
    img_h, img_w = full_imgs.shape[2], full_imgs.shape[3]
    per_img = n_patches // full_imgs.shape[0]
    k = 0
    for i in range(full_imgs.shape[0]):
        for _ in range(per_img):
            x = int(rng.integers(patch_w // 2, img_w - patch_w // 2 + 1))
            y = int(rng.integers(patch_h // 2, img_h - patch_h // 2 + 1))
            rows, cols = slice(y - patch_h // 2, y + patch_h // 2), slice(x - patch_w // 2, x + patch_w // 2)
            patches[k] = full_imgs[i, :, rows, cols]
            patches_masks[k] = full_masks[i, :, rows, cols]
            k += 1
    return patches, patches_masks


# ---------------------------------------------------------------- src/retinaNN_training.py


def masks_unet(masks):
    """Published one-hot training targets: (N, 1, H, W) 0/1 → (N, H*W, 2) float64."""
    n, _, height, width = masks.shape
    flat = np.reshape(masks, (n, height * width))
    one_hot = np.empty((n, height * width, 2))
    one_hot[:, :, 0] = 1 - flat
    one_hot[:, :, 1] = flat
    return one_hot


# ---------------------------------------------------------------- src/retinaNN_predict.py


def auc_pr(y_true, y_scores):
    """The published area under the precision-recall curve (np.trapz is np.trapezoid in numpy 2)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y_true, y_scores)
    precision = np.fliplr([precision])[0]
    recall = np.fliplr([recall])[0]
    return np.trapezoid(precision, recall)


def confusion_threshold(y_scores, threshold_confusion=0.5):
    y_pred = np.empty(y_scores.shape[0])
    for i in range(y_scores.shape[0]):
        y_pred[i] = 1 if y_scores[i] >= threshold_confusion else 0
    return y_pred


# Parameters of the published Keras-1 get_unet (1 input channel): conv (in, out, k) in model order.
UNET_CONVOLUTIONS = [
    (1, 32, 3), (32, 32, 3),
    (32, 64, 3), (64, 64, 3),
    (64, 128, 3), (128, 128, 3),
    (192, 64, 3), (64, 64, 3),
    (96, 32, 3), (32, 32, 3),
    (32, 2, 1),
]  # fmt: skip


# ---------------------------------------------------------------- lib/help_functions.py (pictures)


def group_images(data, per_row):
    assert data.shape[0] % per_row == 0
    assert data.shape[1] == 1 or data.shape[1] == 3
    data = np.transpose(data, (0, 2, 3, 1))
    all_stripe = []
    for i in range(int(data.shape[0] / per_row)):
        stripe = data[i * per_row]
        for k in range(i * per_row + 1, i * per_row + per_row):
            stripe = np.concatenate((stripe, data[k]), axis=1)
        all_stripe.append(stripe)
    totimg = all_stripe[0]
    for i in range(1, len(all_stripe)):
        totimg = np.concatenate((totimg, all_stripe[i]), axis=0)
    return totimg
