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
    private final String problem;

    public DicomFormatException(String file, long offset, int tag, String problem) {
        this(file, offset, tag, problem, null);
    }

    public DicomFormatException(String file, long offset, int tag, String problem, Throwable cause) {
        super(format(file, offset, tag, problem), cause);
        this.file = file;
        this.offset = offset;
        this.tag = tag;
        this.problem = problem;
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

    /** The problem alone, without file, offset and tag. */
    public String problem() { return problem; }

    /** A short category for summaries: truncated, bad pixel data, or otherwise malformed. */
    public String reason() {
        if (problem.contains("bytes that remain") || problem.contains("bytes left") || problem.contains("truncated")) {
            return "truncated file or impossible length";
        }
        return tag == Tag.PIXEL_DATA ? "pixel data cannot be decoded" : "malformed DICOM";
    }
}
