package ich.dicom;

/** Value Representations, PS3.5 6.2. */
public enum VR {
    AE, AS, AT, CS, DA, DS, DT, FD, FL, IS, LO, LT, OB, OD, OF, OL, OV, OW, PN, SH, SL, SQ, SS, ST, SV, TM,
    UC, UI, UL, UN, UR, US, UT, UV,
    /** Implicit VR data element whose VR the reader did not need to know: treated as raw bytes. */
    NONE;

    private static final VR[] BY_CODE = new VR[26 * 26];

    static {
        for (VR vr : values()) {
            if (vr != NONE) BY_CODE[(vr.name().charAt(0) - 'A') * 26 + (vr.name().charAt(1) - 'A')] = vr;
        }
    }

    /** The VR for the two code bytes of an explicit VR element, or null if they are not a known VR. */
    public static VR of(int b0, int b1) {
        if (b0 < 'A' || b0 > 'Z' || b1 < 'A' || b1 > 'Z') return null;
        return BY_CODE[(b0 - 'A') * 26 + (b1 - 'A')];
    }

    /**
     * PS3.5 Table 7.1-1: these VRs have 2 reserved bytes and a 32-bit length in explicit VR encoding;
     * all others a 16-bit length.
     */
    public boolean hasLongLength() {
        return switch (this) {
            case OB, OD, OF, OL, OV, OW, SQ, UC, UN, UR, UT, SV, UV -> true;
            default -> false;
        };
    }

    /** Character-string VRs whose values are padded with spaces (PS3.5 6.2). */
    public boolean isString() {
        return switch (this) {
            case AE, AS, CS, DA, DS, DT, IS, LO, LT, PN, SH, ST, TM, UC, UI, UR, UT -> true;
            default -> false;
        };
    }
}
