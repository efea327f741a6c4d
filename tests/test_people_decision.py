"""The face -> person -> guide decision and its faces.csv row (docs/PEOPLE.md)."""

import csv
import io

import numpy as np
import pytest

from gfrnet_tf.people import (
    FACES_CSV_COLUMNS,
    AcceptanceRule,
    DecisionOptions,
    FaceQuality,
    FaceRecord,
    Person,
    decide_faces,
    faces_csv_bytes,
    faces_csv_row,
    in_position_order,
    match_person,
)

RULE = AcceptanceRule(max_distance=0.5, min_ratio=1.2)
OPTIONS = DecisionOptions(rule=RULE, quality_margin=0.1)
FRONTAL = np.random.default_rng(0).uniform(0, 100, (68, 2))


def _face(photo, index, embedding, score, landmarks=FRONTAL, x=0):
    quality = FaceQuality(size_px=50, sharpness=1.0, yaw=0.0, eyes_open=0.3, score=score)
    return FaceRecord(
        photo,
        index,
        (x, 0, 50, 50),
        np.asarray(landmarks, float),
        np.asarray(embedding, float),
        quality,
    )


def _embedding(direction, scale=1.0):
    vector = np.zeros(128)
    vector[direction] = scale
    return vector


ALICE = Person("alice", (_face("guide:alice.jpg", 0, _embedding(0), 0.9),), named=True)
BOB = Person("bob", (_face("guide:bob.jpg", 0, _embedding(1), 0.9),), named=True)


def test_each_face_takes_its_own_persons_guide():
    faces = [
        _face("p.jpg", 0, _embedding(1) + _embedding(5, 0.2), 0.2),
        _face("p.jpg", 1, _embedding(0) + _embedding(6, 0.3), 0.2),
    ]
    first, second = decide_faces(faces, [ALICE, BOB], OPTIONS)
    assert (first.action, first.person, first.guide.photo) == ("restore", "bob", "guide:bob.jpg")
    assert (second.action, second.person, second.guide.photo) == (
        "restore",
        "alice",
        "guide:alice.jpg",
    )
    assert first.distance == pytest.approx(0.2) and second.distance == pytest.approx(0.3)


def test_a_stranger_is_skipped_never_given_a_guide():
    stranger = _face("p.jpg", 0, _embedding(7), 0.1)  # distance sqrt(2) to both
    (decision,) = decide_faces([stranger], [ALICE, BOB], OPTIONS)
    assert decision.action == "skip" and decision.guide is None
    assert decision.reason == "no guide of this person"


def test_ambiguous_between_two_people_is_skipped():
    between = _face("p.jpg", 0, 0.5 * (_embedding(0) + _embedding(1)), 0.1)
    (decision,) = decide_faces(
        [between], [ALICE, BOB], DecisionOptions(AcceptanceRule(0.8, 1.2), 0.1)
    )
    assert decision.action == "skip" and decision.reason == "could be alice or bob"


def test_one_guide_only_one_face_of_the_photo_is_that_person():
    """With grandmother's guide only, grandfather (also near enough) is not restored with it."""
    near = _face("p.jpg", 0, _embedding(0) + _embedding(5, 0.2), 0.1)
    nearer = _face("p.jpg", 1, _embedding(0) + _embedding(5, 0.1), 0.1)
    far, close = decide_faces([near, nearer], [ALICE], OPTIONS)
    assert close.action == "restore" and close.person == "alice"
    assert far.action == "skip" and far.reason == "another face of this photo is alice"


def test_good_faces_and_guides_are_kept_unless_forced():
    good = _face("p.jpg", 0, _embedding(0), 0.85)
    (kept,) = decide_faces([good], [ALICE], OPTIONS)
    assert kept.action == "keep" and "as good as" in kept.reason
    (forced,) = decide_faces([good], [ALICE], DecisionOptions(RULE, 0.1, restore_good_faces=True))
    assert forced.action == "restore"
    (itself,) = decide_faces([ALICE.guides[0]], [ALICE], OPTIONS)
    assert itself.action == "keep" and itself.reason == "a guide of alice"


def test_any_person_takes_the_nearest_pose_among_all_guides():
    turned = FRONTAL * np.array([0.5, 1.0])
    bob_turned = Person("bob", (_face("guide:bob.jpg", 0, _embedding(1), 0.9, turned),), True)
    (decision,) = decide_faces(
        [_face("p.jpg", 0, _embedding(7), 0.1, turned)],
        [ALICE, bob_turned],
        DecisionOptions(RULE, 0.1, any_person=True),
    )
    assert (decision.action, decision.person) == ("restore", "bob")


def test_match_person_ratio_and_threshold():
    people = [[_embedding(0)], [_embedding(1)]]
    assert match_person(_embedding(0), people, RULE).index == 0
    assert match_person(_embedding(0), [], RULE).index is None
    between = 0.5 * (_embedding(0) + _embedding(1))  # 0.707 from both
    assert match_person(between, people, RULE).reason == "no guide of this person"
    assert (
        match_person(between, people, AcceptanceRule(0.8, 1.2), ["a", "b"]).reason
        == "could be a or b"
    )


def test_faces_are_numbered_from_the_left():
    boxes = [(300, 10, 50, 50), (20, 40, 60, 60), (150, 5, 40, 40)]
    assert in_position_order(boxes) == [1, 2, 0]


def test_faces_csv_rows_are_sorted_and_fixed_precision():
    faces = [
        _face("b/x.jpg", 1, _embedding(0) + _embedding(5, 0.25), 0.2, x=100),
        _face("b/x.jpg", 0, _embedding(7), 0.1),
        _face("a.jpg", 10, _embedding(1), 0.95),
    ]
    decisions = decide_faces(faces[:2], [ALICE, BOB], OPTIONS) + decide_faces(
        faces[2:], [BOB], OPTIONS
    )
    rows = [
        faces_csv_row(decisions[0], distance_after=0.123456),
        faces_csv_row(decisions[1]),
        faces_csv_row(decisions[2]),
    ]
    data = faces_csv_bytes(rows)
    assert data == faces_csv_bytes(reversed(rows))
    parsed = list(csv.DictReader(io.StringIO(data.decode())))
    assert tuple(parsed[0]) == FACES_CSV_COLUMNS
    assert [(r["photo"], r["face"]) for r in parsed] == [
        ("a.jpg", "10"),
        ("b/x.jpg", "0"),
        ("b/x.jpg", "1"),
    ]
    restored = parsed[2]
    assert restored["action"] == "restored" and restored["guide_photo"] == "guide:alice.jpg"
    assert restored["distance_before"] == "0.2500" and restored["distance_after"] == "0.1235"
    assert restored["box"] == "100 0 50 50" and restored["frames"] == ""
    assert (
        parsed[1]["action"] == "skipped: no guide of this person" and parsed[1]["guide_photo"] == ""
    )
    assert parsed[0]["action"].startswith("kept: ")
    failed = faces_csv_row(decisions[0], failure="the model failed")
    assert failed["action"] == "skipped: the model failed" and failed["guide_photo"] == ""
