package ich.dicom;

import java.io.IOException;

/**
 * A file that is not valid DICOM, or that this reader cannot decode. The message always names the file,
 * and where known the byte offset and the tag, so a batch report can point at the exact problem.
 */
public class DicomFormatException extends IOException {
    private final String file;
    private final long offset;
    private final int tag;

    public DicomFormatException(String file, long offset, int tag, String problem) {
        this(file, offset, tag, problem, null);
    }

    public DicomFormatException(String file, long offset, int tag, String problem, Throwable cause) {
        super(format(file, offset, tag, problem), cause);
        this.file = file;
        this.offset = offset;
        this.tag = tag;
    }

    private static String format(String file, long offset, int tag, String problem) {
        StringBuilder sb = new StringBuilder();
        sb.append(file == null ? "<memory>" : file);
        if (offset >= 0) sb.append(" at byte ").append(offset);
        if (tag != Tag.NONE) sb.append(" tag ").append(Tag.toString(tag));
        return sb.append(": ").append(problem).toString();
    }

    public String file() { return file; }

    /** Byte offset in the file where the problem was found, or -1. */
    public long offset() { return offset; }

    /** The tag being read when the problem was found, or {@link Tag#NONE}. */
    public int tag() { return tag; }

    /** A short category for summaries (the class of problem, without file and offset). */
    public String reason() { return "malformed DICOM"; }
}
