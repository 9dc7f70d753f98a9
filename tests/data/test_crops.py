import cv2
import numpy as np
import pytest

from helpers import shared_path
from hsjp.config import AugmentConfig
from hsjp.data.annotations import load_annotations
from hsjp.data.crops import CropGeometry, PersonCrops, collate_skipping, from_tensor
from hsjp.data.targets import KeypointTarget
from hsjp.heatmaps import HeatmapCodec

GEOMETRY = CropGeometry((96, 128))
CODEC = HeatmapCodec((96, 128), (24, 32), 2.0)


def _dataset(anns, augment=None, **kw):
    return PersonCrops(anns.persons(True), GEOMETRY, KeypointTarget(CODEC), augment, anns.flip_pairs,
                       anns.upper_body_ids, **kw)


def test_dataset_on_real_mmpose_fixture():
    root = shared_path("mmpose_tests", "coco")
    anns = load_annotations(root / "test_coco.json", root)
    ds = _dataset(anns, AugmentConfig())
    assert len(ds) == 12
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 128, 96)
        assert s["heatmaps"].shape == (17, 32, 24)
        labelled = s["keypoints"][:, 2] > 0  # after any flip swapped left and right
        # a weight is never set for an unlabelled keypoint, and never for more than were labelled
        assert not (s["weights"][~labelled] > 0).any()
        assert s["weights"].sum() <= anns.persons(True)[i].num_labelled


def test_unaugmented_crop_maps_keypoints_back_to_the_image(synthetic):
    anns = load_annotations(synthetic["val_ann"], synthetic["val_images"])
    ds = _dataset(anns, deterministic=True)
    for i in range(3):
        s = ds[i]
        rec = anns.persons(True)[i]
        m = s["meta"]["crop_to_image"]
        back = s["keypoints"][:, :2] @ m[:, :2].T + m[:, 2]
        vis = rec.keypoints[:, 2] > 0
        assert np.allclose(back[vis], rec.keypoints[vis, :2], atol=1e-2)


def test_flip_augmentation_swaps_left_and_right(synthetic):
    anns = load_annotations(synthetic["val_ann"], synthetic["val_images"])
    only_flip = AugmentConfig(half_body_prob=0, scale_factor=0, rotation=0, rotation_prob=0)
    ds = _dataset(anns, only_flip)
    plain = _dataset(anns, deterministic=True)[0]["keypoints"]
    flipped = [s["keypoints"] for s in (ds[0] for _ in range(20)) if not np.allclose(s["keypoints"], plain)]
    assert flipped, "a 50% flip never happened in 20 draws"
    # left shoulder (5) of the flipped crop is the mirrored right shoulder (6) of the plain crop
    assert flipped[0][5, 0] == pytest.approx(96 - 1 - plain[6, 0], abs=1e-3)


def test_undecodable_image_is_skipped_not_raised(tmp_path, synthetic):
    anns = load_annotations(synthetic["val_ann"], synthetic["val_images"])
    records = anns.persons(True)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    records[0] = type(records[0])(**{**records[0].__dict__, "image_path": str(bad)})
    ds = PersonCrops(records, GEOMETRY, KeypointTarget(CODEC))
    batch = collate_skipping([ds[0], ds[1]])
    assert len(batch["skipped"]) == 1 and "broken.jpg: cannot decode image" in batch["skipped"][0]
    assert batch["image"].shape[0] == 1
    assert from_tensor(batch["image"][0]).shape == (128, 96, 3)


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
def test_border_fills_what_lies_beyond_the_image(border, tmp_path):
    """A crop wider than its image: black bands only with the official 'constant' border."""
    from hsjp.config import DataConfig
    from hsjp.data.annotations import PersonRecord
    from hsjp.data.targets import ImageOnly

    geometry = CropGeometry.from_config(DataConfig(input_size=[96, 128], border=border))
    image = np.full((200, 60, 3), 200, np.uint8)  # a narrow bright image: the 1.25-padded crop overhangs it
    path = tmp_path / "narrow.png"
    cv2.imwrite(str(path), image)
    record = PersonRecord(1, 1, str(path), (0.0, 0.0, 60.0, 200.0), np.zeros((0, 3), np.float32))
    crop = from_tensor(PersonCrops([record], geometry, ImageOnly())[0]["image"])
    dark = (crop.max(axis=2) < 50).mean()
    assert dark > 0.1 if border == "constant" else dark == 0


def test_unknown_border_is_refused():
    from hsjp.config import DataConfig
    from hsjp.errors import ConfigError

    with pytest.raises(ConfigError, match="data.border must be one of constant, replicate, reflect, not 'wrap'"):
        CropGeometry.from_config(DataConfig(border="wrap"))
