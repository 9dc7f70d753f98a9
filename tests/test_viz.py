import json

import cv2
import numpy as np

from hsjp.data.annotations import load_annotations
from hsjp.viz import draw_keypoints, plot_predictions


def test_draw_keypoints_marks_points_above_threshold_and_their_limbs():
    image = np.zeros((100, 100, 3), np.uint8)
    kps = np.array([[20, 20, 0.9], [80, 80, 0.9], [50, 10, 0.1]], np.float32)
    out = draw_keypoints(image, kps, skeleton=[[1, 2]], color=(255, 0, 0))
    assert tuple(out[20, 20]) == (255, 0, 0) and tuple(out[80, 80]) == (255, 0, 0)
    assert out[50, 50].any(), "the limb between keypoints 1 and 2 is drawn"
    assert not out[10, 50].any(), "a keypoint under the threshold is not drawn"
    assert not image.any(), "the input image is left untouched"


def test_plot_predictions_draws_the_best_scoring_persons(tmp_path, synthetic):
    anns = load_annotations(synthetic["val_ann"], synthetic["val_images"])
    gt = json.loads(synthetic["val_ann"].read_text())["annotations"]
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.5 + i / 100}
               for i, a in enumerate(gt) if a["num_keypoints"] > 0]
    png = plot_predictions(results, anns, tmp_path / "p.png", n=3)
    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[1] > picture.shape[0]  # three panels side by side


def test_validation_metrics_by_epoch_or_by_step(tmp_path):
    from hsjp.viz import read_metrics_csv

    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/AP\n0,19,2.0,\n0,49,,0.1\n1,99,,0.3\n")
    assert read_metrics_csv(csv)["val/AP"] == [(1.0, 0.1), (2.0, 0.3)]
    assert read_metrics_csv(csv, val_x="step")["val/AP"] == [(50.0, 0.1), (100.0, 0.3)]
    assert read_metrics_csv(csv)["train/loss"] == [(20.0, 2.0)]


def test_experiment_curves_before_any_arm_finished_draw_empty_axes_without_a_warning(tmp_path, recwarn):
    from hsjp.viz import plot_experiment_curves

    (png,) = plot_experiment_curves([{"status": "not run"}], tmp_path)
    assert cv2.imread(str(png)) is not None
    assert not [w for w in recwarn if "legend" in str(w.message)]
