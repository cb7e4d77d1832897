package ich.preprocess;

/**
 * The region of the source image, in source pixel units (x to the right, y down, (0, 0) the top-left
 * corner of the top-left pixel), that is resampled onto the whole output.
 */
public record CropBox(double x, double y, double width, double height) {
    public CropBox {
        if (!(width > 0) || !(height > 0)) throw new IllegalArgumentException("empty crop box " + width + " x " + height);
    }

    public static CropBox whole(int columns, int rows) { return new CropBox(0, 0, columns, rows); }
}
