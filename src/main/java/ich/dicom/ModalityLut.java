package ich.dicom;

/**
 * A Modality LUT (PS3.3 C.11.1, (0028,3000) Modality LUT Sequence): stored values below {@code firstMapped}
 * map to the first entry, above the last mapped value to the last entry.
 */
public record ModalityLut(int firstMapped, int bitsPerEntry, int[] entries, String lutType) {
    public double apply(int storedValue) {
        int i = storedValue - firstMapped;
        if (i <= 0) return entries[0];
        if (i >= entries.length) return entries[entries.length - 1];
        return entries[i];
    }
}
