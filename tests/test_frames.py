"""Decoding videos into frame stores: resampling, resizing, the mismatch policy, broken files."""

import numpy as np
import pytest

from pipeline.data.frame_store import FrameStore, FrameStoreWriter
from pipeline.data.frames import VideoDecodeError, decode_video, iter_frames, output_size, store_video
from pipeline.data.videos import write_video


def ramp_video(path, frames=30, fps=10.0, height=32, width=48):
    """Frame t is uniformly grey level 8 t, so decoded frames identify themselves."""
    images = np.broadcast_to((np.arange(frames, dtype=np.uint8) * 8)[:, None, None, None],
                             (frames, height, width, 3)).copy()
    write_video(path, images, fps)
    return path


def frame_ids(frames):
    return np.round(frames.reshape(len(frames), -1).mean(1) / 8).astype(int).tolist()


@pytest.fixture
def video(tmp_path):
    return ramp_video(tmp_path / "ramp.mp4")


def test_decode_every_frame_and_resample(video):
    assert frame_ids(decode_video(video)) == list(range(30))
    assert frame_ids(decode_video(video, fps=5)) == list(range(0, 30, 2))
    assert frame_ids(decode_video(video, fps=4)) == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    assert frame_ids(decode_video(video, fps=20))[:6] == [0, 0, 1, 1, 2, 2]


def test_resize(video):
    assert decode_video(video, size=16).shape == (30, 16, 24, 3)  # short side 16, aspect kept
    assert decode_video(video, size=(20, 20)).shape == (30, 20, 20, 3)
    assert output_size(320, 240, 128) == (170, 128)


@pytest.mark.parametrize("labels, action, ids_tail", [
    (30, "exact", [28, 29]),
    (27, "dropped 3", [25, 26]),
    (33, "padded 3", [29, 29]),
])
def test_mismatch_policy_within_tolerance(video, tmp_path, labels, action, ids_tail):
    store = tmp_path / "ramp.npy"
    report = store_video(video, store, labels, tolerance_frames=3, tolerance_fraction=0.0)
    assert report.action == action and report.decoded == 30 and report.labels == labels
    with FrameStore(store) as frames:
        assert len(frames) == labels
        assert frame_ids(frames.read([labels - 2, labels - 1])) == ids_tail


@pytest.mark.parametrize("labels, message", [(26, "more than 29 frames decoded for 26 labels"),
                                             (34, "30 frames decoded for 34 labels")])
def test_mismatch_beyond_tolerance_is_an_error_and_leaves_nothing(video, tmp_path, labels, message):
    store = tmp_path / "ramp.npy"
    with pytest.raises(VideoDecodeError, match=rf"ramp\.mp4: {message}"):
        store_video(video, store, labels, tolerance_frames=3, tolerance_fraction=0.0)
    assert list(tmp_path.iterdir()) == [video]


def test_truncated_video_is_an_error_naming_it(video, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"truncated\.mp4: "):
        store_video(truncated, tmp_path / "truncated.npy", 30)
    assert not (tmp_path / "truncated.npy").exists()


def test_garbage_and_missing_files_are_errors(tmp_path):
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match=r"garbage\.avi: cannot open as a video"):
        list(iter_frames(garbage))
    with pytest.raises(VideoDecodeError, match=r"missing\.mp4: video file does not exist"):
        list(iter_frames(tmp_path / "missing.mp4"))


def test_jpeg_store_reads_back_close_to_the_frames(video, tmp_path):
    store_video(video, tmp_path / "ramp.h5", 30, jpeg_quality=95)
    decoded = decode_video(video)
    with FrameStore(tmp_path / "ramp.h5") as frames:
        assert len(frames) == 30 and (frames.height, frames.width) == (32, 48)
        read = frames.read([0, 17, 29])
    assert np.abs(read.astype(int) - decoded[[0, 17, 29]].astype(int)).max() <= 3


def test_store_writer_refuses_a_wrong_count(tmp_path):
    with pytest.raises(ValueError, match="1 frames written, 2 announced"), \
            FrameStoreWriter(tmp_path / "x.npy", 2) as writer:
        writer.append(np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
