"""The paper's own Table 1 numbers for its seven GFRNet rows, to print beside a study's.

Transcribed from Table 1 of Li et al. (ECCV 2018): PSNR (dB) and SSIM on the two test
subsets (VggFace2 and WebFace) at 4x and 8x, 256x256 faces, trained on VGGFace2.
"""

PAPER_TABLE1 = {
    # row: {(subset, setting): (psnr, ssim)}
    "-WG": {
        ("VggFace2", "4x"): (25.97, 0.915),
        ("VggFace2", "8x"): (22.91, 0.838),
        ("WebFace", "4x"): (28.73, 0.928),
        ("WebFace", "8x"): (24.76, 0.884),
    },
    "-WG2": {
        ("VggFace2", "4x"): (27.20, 0.932),
        ("VggFace2", "8x"): (23.22, 0.863),
        ("WebFace", "4x"): (29.45, 0.945),
        ("WebFace", "8x"): (25.93, 0.914),
    },
    "-W": {
        ("VggFace2", "4x"): (26.03, 0.923),
        ("VggFace2", "8x"): (23.29, 0.843),
        ("WebFace", "4x"): (29.66, 0.934),
        ("WebFace", "8x"): (25.20, 0.897),
    },
    "-W2": {
        ("VggFace2", "4x"): (27.25, 0.933),
        ("VggFace2", "8x"): (23.24, 0.864),
        ("WebFace", "4x"): (29.73, 0.948),
        ("WebFace", "8x"): (25.95, 0.917),
    },
    "-F": {
        ("VggFace2", "4x"): (26.61, 0.927),
        ("VggFace2", "8x"): (23.17, 0.863),
        ("WebFace", "4x"): (31.43, 0.920),
        ("WebFace", "8x"): (26.00, 0.922),
    },
    "R": {
        ("VggFace2", "4x"): (27.90, 0.943),
        ("VggFace2", "8x"): (24.05, 0.890),
        ("WebFace", "4x"): (31.46, 0.962),
        ("WebFace", "8x"): (26.88, 0.922),
    },
    "Full": {
        ("VggFace2", "4x"): (28.55, 0.947),
        ("VggFace2", "8x"): (24.10, 0.898),
        ("WebFace", "4x"): (32.31, 0.973),
        ("WebFace", "8x"): (27.21, 0.935),
    },
}
SUBSETS = ("VggFace2", "WebFace")
