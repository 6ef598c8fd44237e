"""CIFAR parameters of the corruption recipe (docs/METHOD.md §6), severities 1 -> 5.

The recipe is `make_cifar_c.py` of Hendrycks & Dietterich (2019). Values below are those of
docs/METHOD.md §6; spatter takes the CIFAR values of the same script.
Parameters given in pixels are defined for 32 px images and scaled by `size_scale` (see
`freqrobust/corruptions/__init__.py`).
"""

# Bumped whenever a change alters generated pixels; part of the generated-data cache key.
# 4 (2026-11-29): spatter's Canny is strict along diagonals (as OpenCV) and its uint8 floor no
# longer drops a level at exact integers; grey frost from photographs is clipped before the luma.
RECIPE_VERSION = 4

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression")
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES = (1, 2, 3, 4, 5)

PARAMS = {
    "gaussian_noise": (.04, .06, .08, .09, .10),  # sigma
    "shot_noise": (500, 250, 100, 75, 50),  # Poisson rate per unit intensity
    "impulse_noise": (.01, .02, .03, .05, .07),  # salt-and-pepper amount
    "defocus_blur": ((.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1)),  # radius, alias sigma (px)
    # sigma (px), max delta (px), iterations
    "glass_blur": ((.05, 1, 1), (.25, 1, 1), (.4, 1, 1), (.25, 1, 2), (.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # radius, sigma (px)
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # zoom factors arange(1, value, .01)
    # mean, std, zoom, threshold, blur radius (px), blur sigma (px), blend
    "snow": ((.1, .2, 1, .6, 8, 3, .95), (.1, .2, 1, .5, 10, 4, .9),
             (.15, .3, 1.75, .55, 10, 4, .9), (.25, .3, 2.25, .6, 12, 6, .85),
             (.3, .3, 1.25, .65, 14, 12, .8)),
    "frost": ((1, .2), (1, .3), (.9, .4), (.85, .4), (.75, .45)),  # image weight, frost weight
    "fog": ((.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75)),  # amount, plasma decay
    "brightness": (.05, .1, .15, .2, .3),  # added to V in HSV
    "contrast": (.75, .5, .4, .3, .15),  # factor around the per-channel mean
    # alpha, sigma, affine, as fractions of the image size
    "elastic_transform": ((0, 0, .08), (.05, .2, .07), (.08, .06, .06), (.1, .04, .05),
                          (.1, .03, .03)),
    "pixelate": (.95, .9, .85, .75, .65),  # down-scale factor (PIL box filter both ways)
    "jpeg_compression": (80, 65, 58, 50, 40),  # quality
    "speckle_noise": (.06, .1, .12, .16, .2),  # sigma of the multiplicative noise
    "gaussian_blur": (.4, .6, .7, .8, 1),  # sigma (px)
    # mean, std, blur sigma (px), threshold, intensity / mud blur sigma (px), mud?
    "spatter": ((.62, .1, .7, .7, .5, 0), (.65, .1, .8, .7, .5, 0), (.65, .3, 1, .69, .5, 0),
                (.65, .1, .7, .69, .6, 1), (.65, .1, .5, .68, .6, 1)),
    "saturate": ((.3, 0), (.1, 0), (1.5, 0), (2, .1), (2.5, .2)),  # S multiplier, S add
}
