"""Restoring by person on real faces: each face with its own person's guide, never a stranger's.

Obama, Biden (White House portraits) and the astronaut; models are `tiny_model` (32 px)
or stand-ins whose result is known (sharp or blurred), where a decision about the
result is what is tested.
"""

import dataclasses
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.io import load_image
from gfrnet_tf.people import face_quality
from gfrnet_tf.restoration.library import (
    FaceAnalyser,
    RestoreSettings,
    default_options,
    guide_crops,
    library_people,
    list_library,
    named_people,
    restore_photos,
)
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.restoration.restorer import Restoration, load_restorer
from people_fixtures import PEOPLE, degraded, portrait, side_by_side, write

SIZE = 32  # conftest's `tiny_model`


@pytest.fixture(scope="module")
def analyser():
    return FaceAnalyser()


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A library: a group photo (Obama left, Biden right, faces ~130 px, degraded 3x) and
    the guides (Obama's from other photos; Biden has one photo)."""
    root = tmp_path_factory.mktemp("family")
    group = degraded(side_by_side(portrait("obama3"), portrait("biden"), height=400), scale=3)
    write(root / "photos", {"group.png": group})
    write(
        root / "guides",
        {
            "obama/obama.jpg": portrait("obama"),
            "obama/obama2.jpg": portrait("obama2"),
            "biden/biden.jpg": portrait("biden"),
        },
    )
    return root


def _decide(analyser, root, guides_dir, options=None):
    """The group photo's analysis, people and decisions, as `restore_library` makes them."""
    from gfrnet_tf.people import decide_faces

    named = named_people(analyser, (), guides_dir)
    (item,) = list_library(root / "photos")
    analysis = analyser.analyse(item)
    options = options or default_options()
    people = library_people([analysis], named.people, options)[item.album]
    return item, analysis, named, people, decide_faces(analysis.faces, people, options)


def _restore(item, decisions, named, analysis, restorer, out, settings):
    sources = {**named.sources, item.photo: item.path}
    guides = guide_crops(
        [d.guide for d in decisions if d.guide], sources, settings.image_size, settings.margin
    )
    output = OutputFolder(out, item.path)
    (result,) = restore_photos(
        [(item, decisions)], guides, restorer, FaceAnalyser(), output, settings
    )
    return result


def test_faces_are_numbered_from_the_left_with_their_boxes(analyser, family):
    analysis = analyser.analyse(list_library(family / "photos")[0])
    # stages hand plain values to each other, and a Beam worker unpickles its analyser
    copy = pickle.loads(pickle.dumps(analysis))
    assert [f.key for f in copy.faces] == [f.key for f in analysis.faces]
    assert pickle.loads(pickle.dumps(analyser)).analyse(analysis.item).faces[1].box == (
        analysis.faces[1].box
    )
    faces = analysis.faces
    assert len(faces) == 2
    assert [f.index for f in faces] == [0, 1] and faces[0].box[0] < faces[1].box[0]
    obama = analyser.faces(portrait("obama"), "o")[0].embedding
    distances = [analyser.identity.distance(f.embedding, obama) for f in faces]
    assert distances[0] < distances[1]  # face 0 is the one on the left: Obama


def test_two_person_photo_each_face_takes_its_own_persons_guide(
    analyser, family, tiny_model, tmp_path
):
    item, analysis, named, people, decisions = _decide(analyser, family, family / "guides")
    assert [p.name for p in named.people] == ["biden", "obama"] and not named.problems
    left, right = decisions
    assert (left.action, left.person) == ("restore", "obama")
    assert left.guide.photo.startswith("guides:obama/")
    assert (right.action, right.person) == ("restore", "biden")
    assert right.guide.photo == "guides:biden/biden.jpg"
    # the margin to the acceptance rule's limit, as faces.csv reports it
    assert left.distance <= 0.55 and right.distance <= 0.55

    settings = RestoreSettings(SIZE, keep_sharper=False)
    result = _restore(
        item, decisions, named, analysis, load_restorer(tiny_model[1]), tmp_path / "both", settings
    )
    rows = {row["face"]: row for row in result.rows}
    assert rows["0"]["action"] == rows["1"]["action"] == "restored"
    assert rows["0"]["person"] == "obama" and rows["1"]["guide_photo"] == "guides:biden/biden.jpg"
    assert float(rows["0"]["distance_after"]) >= 0  # measured on the restored photo


def test_with_one_persons_guide_only_that_face_changes(analyser, family, tiny_model, tmp_path):
    guides = tmp_path / "guides"
    write(guides, {"obama/obama.jpg": portrait("obama")})
    item, analysis, named, people, decisions = _decide(analyser, family, guides)
    left, right = decisions
    assert left.action == "restore" and left.person == "obama"
    assert right.action != "restore" and right.guide is None  # Biden: never Obama's guide
    settings = RestoreSettings(SIZE, keep_sharper=False)
    _restore(
        item, decisions, named, analysis, load_restorer(tiny_model[1]), tmp_path / "out", settings
    )
    before = load_image(item.path)
    after = load_image(tmp_path / "out" / "group_restored.png")
    changed = np.any(before != after, axis=-1)
    x, y, w, h = right.face.box
    assert not changed[y : y + h, x : x + w].any()  # Biden's face is untouched
    x, y, w, h = left.face.box
    assert changed[y : y + h, x : x + w].mean() > 0.5


def test_a_guide_photo_with_two_faces_is_refused_and_empty_folders_named(analyser, tmp_path):
    guides = tmp_path / "guides"
    write(
        guides,
        {
            "pair/both.jpg": side_by_side(portrait("obama"), portrait("biden")),
            "landscape/sky.png": np.full((80, 80, 3), 200, np.uint8),
        },
    )
    (guides / "empty").mkdir()
    write(tmp_path, {"loose.png": portrait("obama")})
    os.replace(tmp_path / "loose.png", guides / "loose.png")
    named = named_people(analyser, [guides / "pair" / "both.jpg"], guides)
    assert named.people == ()
    problems = sorted(named.problems)
    assert len(problems) == 5, problems  # one line per file or folder
    assert sum("2 faces; crop the guide to one person" in p for _, p in problems) == 2
    assert any(s.endswith("empty") and p == "empty person folder" for s, p in problems)
    assert any(s.endswith("landscape") and "none of its 1 photo(s)" in p for s, p in problems)
    assert any(s.endswith("loose.png") and "person's folder" in p for s, p in problems)


def test_guides_of_one_person_are_joined_and_named_after_the_first(analyser, tmp_path):
    write(
        tmp_path,
        {"a.jpg": portrait("obama2"), "b.jpg": portrait("obama"), "c.jpg": portrait("biden")},
    )
    named = named_people(analyser, [tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"])
    assert [(p.name, len(p.guides)) for p in named.people] == [("a", 2), ("c", 1)]


class _Stand_in:
    """A restorer returning a known face: `sharp` the given crop, else the input blurred."""

    def __init__(self, sharp=None):
        self.sharp = sharp

    def __call__(self, degraded, guide):
        if self.sharp is not None:
            restored = np.repeat(self.sharp[None], len(degraded), axis=0)
        else:
            restored = np.stack([cv2.GaussianBlur(d, (0, 0), 3) for d in degraded])
        return Restoration(restored, guide)


def test_a_face_the_model_would_blur_is_kept_unless_forced(analyser, family, tmp_path):
    """Issue 26 item 7: the same quality score decides; the clean face stays as it was."""
    item, analysis, named, people, decisions = _decide(analyser, family, family / "guides")
    settings = RestoreSettings(64)
    blurred = _restore(item, decisions, named, analysis, _Stand_in(), tmp_path / "a", settings)
    assert {r["action"] for r in blurred.rows} == {"kept: sharper than the model's result"}
    assert not (tmp_path / "a" / "group_restored.png").exists()
    forced = dataclasses.replace(settings, keep_sharper=False)
    restored = _restore(item, decisions, named, analysis, _Stand_in(), tmp_path / "b", forced)
    assert {r["action"] for r in restored.rows} == {"restored"}
    # a result sharper than the face is taken
    sharp = cv2.resize(portrait("obama")[20:180, 20:180], (64, 64), interpolation=cv2.INTER_AREA)
    better = _restore(item, decisions, named, analysis, _Stand_in(sharp), tmp_path / "c", settings)
    assert {r["action"] for r in better.rows} == {"restored"}


def test_a_group_of_blurred_faces_guides_nobody(analyser):
    """Three blurred photos of a generated library (tests/data/people): grouped without
    names, the blurred Biden face and two blurred Obama faces form one group, and its best
    face (Obama, quality 0.64) took Biden's face as its person's: the identity rule holds
    for clean guides only. A group whose best face is below `MIN_GUIDE_QUALITY` guides
    nobody, so no face here takes a guide."""
    from gfrnet_tf.people import decide_faces
    from gfrnet_tf.restoration.grouping import MIN_GUIDE_QUALITY, find_people

    truth = {("photo01164_old.png", 0): "obama", ("photo01172_old.png", 0): "obama"}
    truth |= {("photo01199_old.png", 0): "biden", ("photo01199_old.png", 1): "obama"}
    analyses = [analyser.analyse(item) for item in list_library(PEOPLE / "blurred_album")]
    faces = [face for analysis in analyses for face in analysis.faces]
    assert {(Path(f.photo).name, f.index) for f in faces} == set(truth)
    options = default_options()

    def restored(min_guide_quality):
        people = find_people(faces, (), options, min_guide_quality=min_guide_quality)
        return [
            (
                truth[Path(d.face.photo).name, d.face.index],
                truth[Path(d.guide.photo).name, d.guide.index],
            )
            for analysis in analyses
            for d in decide_faces(analysis.faces, people, options)
            if d.action == "restore"
        ]

    assert restored(0.0) == [("biden", "obama")]  # the hazard is real without the floor
    assert restored(MIN_GUIDE_QUALITY) == []


def test_quality_score_ranks_degradation_not_size():
    face = portrait("obama")
    box = FaceAnalyser().faces(face, "o")[0]
    clean = face_quality(face, box.box, box.landmarks).score
    scores = [face_quality(degraded(face, s), box.box, box.landmarks).score for s in (2, 4, 8)]
    assert clean > scores[0] > scores[1] > scores[2]
    assert clean - scores[1] > default_options().quality_margin  # a 4x copy gets restored


@pytest.mark.slow
def test_a_face_restores_to_the_same_bytes_whatever_shares_its_batch(
    analyser, family, tiny_model, tmp_path
):
    """Keras and SavedModel: the group photo alone, and after two other photos in a batch."""
    savedmodel = export_savedmodel(tiny_model[0], tmp_path / "export", SIZE)
    item, analysis, named, people, decisions = _decide(analyser, family, family / "guides")
    other = tmp_path / "other"
    write(
        other, {"a.png": degraded(portrait("obama2"), 3), "b.png": degraded(portrait("obama"), 3)}
    )
    from gfrnet_tf.people import decide_faces

    others = []
    for other_item in list_library(other):
        faces = analyser.analyse(other_item).faces
        others.append((other_item, decide_faces(faces, named.people, default_options())))
    sources = {**named.sources, item.photo: item.path}
    settings = RestoreSettings(SIZE, batch_size=4, keep_sharper=False)
    all_guides = [d.guide for _, ds in [*others, (item, decisions)] for d in ds if d.guide]
    guides = guide_crops(all_guides, sources, SIZE)
    for backend in (tiny_model[1], savedmodel):
        restorer = load_restorer(backend)
        outputs = []
        for name, jobs in (
            ("alone", [(item, decisions)]),
            ("shared", [*others, (item, decisions)]),
        ):
            folder = OutputFolder(tmp_path / f"{name}-{backend.name}", item.path)
            list(restore_photos(jobs, guides, restorer, analyser, folder, settings))
            outputs.append((folder.path / "group_restored.png").read_bytes())
        assert outputs[0] == outputs[1], backend


def _truth(photo: str, face: str) -> str:
    """Who a face of the generated library shows, from its file name (and place)."""
    name = photo.rsplit("/", 1)[-1]
    if name.startswith("group"):
        return ["obama", "biden"][int(face)]
    if name.startswith("clip"):
        return "astronaut"
    return next(who for who in ("obama", "biden", "astronaut") if name.startswith(who))


@pytest.mark.slow
def test_library_mode_restores_degraded_faces_with_their_own_persons_guides(
    analyser, tiny_model, tmp_path
):
    """Several people, several photos each, degraded copies, a group photo and a clip: the
    degraded faces restored with their own person's guides, the good ones left as they
    are, and a second run gives the same bytes."""
    import csv
    import json

    from gfrnet_tf.restoration.library import restore_library
    from gfrnet_tf.video import synthetic as clips
    from gfrnet_tf.video.people import ClipStages

    def big(name):
        return side_by_side(portrait(name), height=400)

    root = tmp_path / "library"
    write(
        root,
        {
            "family/obama.jpg": portrait("obama"),
            "family/obama2.jpg": portrait("obama2"),
            "family/obama3_old.png": degraded(big("obama3"), 3),
            "family/biden.jpg": portrait("biden"),
            "family/biden_old.png": degraded(big("biden"), 3, seed=1),
            "family/group_old.png": degraded(
                side_by_side(portrait("obama3"), portrait("biden"), height=400), 3, seed=2
            ),
            "space/astronaut.png": portrait("astronaut"),
            "space/astronaut_old.png": degraded(portrait("astronaut"), 3),
            "noface.png": np.full((64, 64, 3), 120, np.uint8),
        },
    )
    clips.write_clip(
        root / "space" / "clip.mp4",
        (clips.degraded_frame(t, 320, 256) for t in range(12)),
        320,
        256,
        audio=False,
    )
    restorer = load_restorer(tiny_model[1])
    settings = RestoreSettings(SIZE, keep_sharper=False)
    outputs = []
    for run in ("first", "second"):
        output = OutputFolder(tmp_path / run, root)
        summary = restore_library(
            root,
            output,
            restorer,
            analyser,
            settings,
            default_options(),
            clips=ClipStages(identity_every=0),
            progress=False,
            say=lambda line: None,
        )
        outputs.append(output.path)
    rows = list(csv.DictReader((outputs[0] / "faces.csv").open()))
    by_face = {(r["photo"], r["face"]): r for r in rows}
    assert by_face[("noface.png", "-1")]["action"].startswith("skipped: no face")
    for row in rows:
        if row["action"] == "restored":
            assert _truth(row["guide_photo"], row["guide_face"]) == _truth(
                row["photo"], row["face"]
            ), row
    restored = {key for key, r in by_face.items() if r["action"] == "restored"}
    assert restored == {
        ("family/obama3_old.png", "0"),
        ("family/biden_old.png", "0"),
        ("family/group_old.png", "0"),
        ("family/group_old.png", "1"),
        ("space/astronaut_old.png", "0"),
        ("space/clip.mp4", "0"),
    }, rows
    for clean in ("family/obama.jpg", "family/biden.jpg", "space/astronaut.png"):
        assert by_face[(clean, "0")]["action"].startswith("kept: ")
        assert not (outputs[0] / clean).with_name(Path(clean).stem + "_restored.png").exists()
    assert by_face[("space/clip.mp4", "0")]["frames"] == "0-11"
    assert (outputs[0] / "space" / "clip_restored.mp4").exists()
    people = json.loads((outputs[0] / "people.json").read_text())["people"]
    assert len(people) == 3 and summary.restored == 6
    assert len(list((outputs[0] / "people").glob("*.png"))) == 3

    def files(folder):
        return {
            p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
        }

    assert files(outputs[0]) == files(outputs[1])


def test_list_library_walks_recursively_in_one_order_and_reports_hazards(tmp_path):
    root = tmp_path / "root"
    for name in ("b/x.jpg", "b/x.png", "a/deep/y.jpg", "z.jpg", ".hidden.jpg", "b/.cache/w.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "clip.mov").write_bytes(b"x")
    os.symlink(root / "a", root / "a" / "deep" / "back")  # a loop through a's own tree
    os.symlink(root / "missing", root / "dangling.jpg")
    (root / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"x")
    items = list_library(root)
    assert [i.photo for i in items] == sorted(i.photo for i in items)
    listed = {i.photo: i for i in items}
    assert set(listed) == {
        "a/deep/back",
        "a/deep/y.jpg",
        "b/x.jpg",
        "b/x.png",
        "caf\\xe9.jpg",
        "clip.mov",
        "dangling.jpg",
        "z.jpg",
    }
    assert listed["a/deep/back"].problem == "symlink loop: folder not followed"
    assert listed["dangling.jpg"].problem.startswith("not a file")
    assert listed["clip.mov"].kind == "clip" and listed["z.jpg"].kind == "photo"
    assert (listed["b/x.jpg"].output, listed["b/x.png"].output) == ("b/x_jpg", "b/x_png")
    assert listed["a/deep/y.jpg"].output == "a/deep/y" and listed["a/deep/y.jpg"].album == "a"
    assert os.path.exists(listed["caf\\xe9.jpg"].path)  # the real name opens
    assert list_library(root) == items


def test_an_albums_sheets_are_written_once_its_last_photo_is_in(analyser, tiny_model, tmp_path):
    """The report holds an album's contact-sheet pictures only until the album is done, so
    a library of many albums does not hold them all until the end."""
    from gfrnet_tf.io.paths import safe_name
    from gfrnet_tf.restoration.library import LibraryReport, plan_library, restore_planned

    root = tmp_path / "library"
    write(
        root,
        {
            "family/obama.jpg": portrait("obama"),
            "family/obama3_old.png": degraded(side_by_side(portrait("obama3"), height=400), 3),
            "space/astronaut.png": portrait("astronaut"),
            "space/astronaut_old.png": degraded(portrait("astronaut"), 3),
        },
    )
    settings = RestoreSettings(SIZE, keep_sharper=False)
    plan = plan_library(list_library(root), analyser, settings, default_options())
    report = LibraryReport(plan, tmp_path / "out")
    sheets = tmp_path / "out" / "people"
    jobs = plan.jobs()
    results = restore_planned(
        jobs,
        plan,
        load_restorer(tiny_model[1]),
        analyser,
        OutputFolder(tmp_path / "out", root),
        settings,
    )
    for (item, _), result in zip(jobs, results):
        report.add(result)
        if item.photo == "family/obama3_old.png":  # the family's last photo
            (family,) = plan.people_of["family"]
            assert family.name not in report.sheets.pictures
            assert [p.name for p in sheets.iterdir()] == [f"{safe_name(family.name)}.png"]
            assert not (tmp_path / "out" / "faces.csv").exists()
    assert report.sheets.pictures == {}  # the space album was done with its last photo
    summary = report.write()
    assert summary.restored == 2 and len(list(sheets.iterdir())) == 2
    assert (tmp_path / "out" / "faces.csv").exists()
