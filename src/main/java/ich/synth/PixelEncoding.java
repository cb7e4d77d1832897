package ich.synth;

/**
 * How a study stores Hounsfield units, as the scanners of the RSNA data do. All have Bits Allocated 16 and Rescale
 * Slope 1.
 */
public enum PixelEncoding {
    /** Signed 16-bit, intercept -1024: stored = HU + 1024. The common case. */
    SIGNED_16(16, 1, -1024, 3071),
    /** Unsigned 12-bit, intercept -1024: stored = HU + 1024 within 0..4095. */
    UNSIGNED_12(12, 0, -1024, 3071),
    /**
     * Unsigned 12-bit with intercept 0 or 1, stored = HU mod 4096: air at -1000 HU is stored as 3096. What the
     * RSNA 12-bit fix (see {@link ich.hu.HounsfieldTransform}) exists for; read without the fix, air looks like
     * dense bone. HU below -1000 cannot be told from bone after the fix, so they are stored as -1000.
     */
    UNSIGNED_12_MODULO(12, 0, -1000, 3095);

    public final int bitsStored;
    public final int pixelRepresentation;
    /** The HU range the encoding can represent (and that the generator clamps to). */
    public final int minHu, maxHu;

    PixelEncoding(int bitsStored, int pixelRepresentation, int minHu, int maxHu) {
        this.bitsStored = bitsStored;
        this.pixelRepresentation = pixelRepresentation;
        this.minHu = minHu;
        this.maxHu = maxHu;
    }

    /** HU of pixels outside the reconstruction circle, as many scanners write them; only signed 16-bit can hold it. */
    public static final int OUTSIDE_HU = -2000;

    /** Whether pixels outside the reconstruction circle can be stored as {@link #OUTSIDE_HU}. */
    public boolean holdsOutside() { return this == SIGNED_16; }

    /**
     * The stored value for a HU value, clamped to {@code minHu..maxHu} ({@link #OUTSIDE_HU} passes for signed
     * 16-bit). The words are what a scanner writes: 16 bits, the high 4 unused bits of 12-bit data zero.
     */
    public int stored(int hu) {
        int h = hu == OUTSIDE_HU && holdsOutside() ? hu : representable(hu);
        return switch (this) {
            case SIGNED_16 -> (h + 1024) & 0xFFFF;
            case UNSIGNED_12 -> h + 1024;
            case UNSIGNED_12_MODULO -> h & 0xFFF;
        };
    }

    /** {@code hu} clamped to what the encoding keeps for tissue: what a correct reader gets back. */
    public int representable(int hu) { return Math.max(minHu, Math.min(maxHu, hu)); }
}
