// @ts-check
// Photos are scaled down on the phone before they are kept or sent: small enough for a weak network, upright.

const MAX_EDGE = 1600; // longest edge, pixels
const JPEG_QUALITY = 0.82;

/**
 * A photo scaled down on the phone (longest edge ``MAX_EDGE``, JPEG): small enough to send on a weak network,
 * upright (the EXIF orientation applied), without the camera's metadata.
 * @param {File} file
 * @returns {Promise<Blob>}
 */
export async function downscale(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_EDGE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("photo could not be encoded"))), "image/jpeg", JPEG_QUALITY);
  });
}

