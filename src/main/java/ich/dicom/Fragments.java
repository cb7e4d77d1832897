package ich.dicom;

/**
 * Encapsulated Pixel Data (PS3.5 A.4): the Basic Offset Table item and the fragment items, as offsets and
 * lengths into the backing data. {@code itemOffsets[i]} is where fragment i's item tag starts, the origin of
 * the Basic and Extended Offset Tables.
 */
public record Fragments(long basicOffsetTableOffset, int basicOffsetTableLength,
                        long[] itemOffsets, long[] valueOffsets, int[] valueLengths) {
    public int count() { return valueOffsets.length; }
}
