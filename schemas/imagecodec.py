"""Image bytes <-> uint8 HWC arrays (RGB or grey), the one place that knows how images are stored in rows.

Stored formats (the ``image_format`` column): ``raw`` (C-order uint8 HWC bytes; ``height``/``width``/``channels``
give the shape), or an encoded ``jpeg``/``png``/``webp``/``bmp`` file. Colour is RGB with 3 channels; grey
images keep 1 channel. Alpha is dropped; 16-bit images are scaled to 8 bits.
"""

from __future__ import annotations

import numpy as np

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)
PASSTHROUGH = {"jpeg", "png", "webp"}


class ImageDecodeError(ValueError):
    """Bytes that are not a decodable image."""


def _cv2():
    import cv2

    cv2.setNumThreads(0)
    return cv2


def sniff_format(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_file_bytes(data: bytes) -> np.ndarray:
    """Decode an image file to uint8 HWC, C in (1, 3); raise ImageDecodeError with the reason otherwise."""
    return normalise(_imdecode(data), bgr=True)


def _imdecode(data: bytes) -> np.ndarray:
    if not data:
        raise ImageDecodeError("empty file")
    cv2 = _cv2()
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageDecodeError("not a decodable image (corrupt or unsupported format)")
    return arr


def probe_file_bytes(data: bytes) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Decode (validating the whole file) and return the raw OpenCV array plus the stored (h, w, c) shape.

    Cheaper than ``decode_file_bytes`` when the file will be stored as it is: no colour conversion or copy.
    """
    arr = _imdecode(data)
    if arr.ndim == 2:
        return arr, (arr.shape[0], arr.shape[1], 1)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4) and arr.dtype == np.uint8:
        return arr, (arr.shape[0], arr.shape[1], 1 if arr.shape[2] == 1 else 3)
    return arr, normalise(arr, bgr=True).shape


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def jpeg_shape(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, stored channels) from a JPEG's frame header, without decoding; None if not found."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        if marker in _SOF:
            if i + 10 > n:
                return None
            h, w, comps = (
                int.from_bytes(data[i + 5 : i + 7], "big"),
                int.from_bytes(data[i + 7 : i + 9], "big"),
                data[i + 9],
            )
            return (h, w, 1 if comps == 1 else 3) if h and w else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def validate_jpeg(data: bytes) -> tuple[int, int, int]:
    """Check a JPEG file end to end and return its stored (h, w, c), cheaply.

    The entropy-coded data is decoded in full (that is where corruption shows), at 1/8 scale and in grey, which
    skips most of the inverse DCT and all colour conversion: about 3.5x faster than a full decode here, with the
    same verdict (600 randomly corrupted flowers JPEGs: identical results to a full ``IMREAD_UNCHANGED`` decode).
    """
    shape = jpeg_shape(data)
    if shape is None:  # headers our scan does not follow (stray bytes, odd lengths): libjpeg may still read it
        return probe_file_bytes(data)[1]
    cv2 = _cv2()
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        raise ImageDecodeError("not a decodable image (corrupt or truncated JPEG)")
    return shape


def normalise(arr: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """Any 2-D/3-D image array -> contiguous uint8 HWC with 1 (grey) or 3 (RGB) channels."""
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"unsupported image shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.shape[2] == 3 and bgr:
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def encode(img: np.ndarray, fmt: str, *, jpeg_quality: int = 95) -> bytes:
    """Encode uint8 HWC (RGB or grey) as ``fmt`` (raw, jpeg, png, webp, bmp)."""
    if fmt == "raw":
        return np.ascontiguousarray(img).tobytes()
    cv2 = _cv2()
    bgr = img[:, :, ::-1] if img.shape[2] == 3 else img[:, :, 0]
    ext = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if fmt == "jpeg" else []
    if fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ImageDecodeError(f"OpenCV could not encode a {img.shape} image as {fmt}")
    return buf.tobytes()


def decode(data: bytes, fmt: str, height: int, width: int, channels: int) -> np.ndarray:
    """Decode one stored row image to uint8 HWC."""
    if fmt == "raw":
        return np.frombuffer(data, np.uint8).reshape(height, width, channels)
    img = decode_file_bytes(data)
    if img.shape[2] != channels:
        img = img.mean(axis=2, keepdims=True).astype(np.uint8) if channels == 1 else np.repeat(img, 3, axis=2)
    return img


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    if img.shape[:2] == (height, width):
        return img
    cv2 = _cv2()
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if height * width < h * w else cv2.INTER_LINEAR
    out = cv2.resize(img, (width, height), interpolation=interp)
    return normalise(out)
