package ich.labels;

import java.io.IOException;

/**
 * A label or submission CSV that cannot be read: a malformed line, a bad label, conflicting duplicates, an
 * image without all six subtypes. The message always names the file, and the line where there is one.
 */
public class LabelFormatException extends IOException {
    private final String file;
    private final long line;
    private final String problem;

    public LabelFormatException(String file, long line, String problem) {
        super((file == null ? "<stream>" : file) + (line > 0 ? ": line " + line : "") + ": " + problem);
        this.file = file;
        this.line = line;
        this.problem = problem;
    }

    public String file() { return file; }

    /** The 1-based line number (the header is line 1), or 0 when the problem is not one line's. */
    public long line() { return line; }

    /** The problem alone, without file and line. */
    public String problem() { return problem; }
}
