package ich.io;

/** The reports' CSV files: RFC 4180 quoting for free-text cells (paths, error messages), atomic whole-file writes. */
public final class Csv {
    private Csv() {}

    /** Writes {@code header} and {@code rows} (already joined cells), one per line, atomically ({@link AtomicFile}). */
    public static void write(java.nio.file.Path file, String header, java.util.List<String> rows) throws java.io.IOException {
        AtomicFile.write(file, false, channel -> {
            java.io.Writer w = new java.io.BufferedWriter(java.nio.channels.Channels.newWriter(channel, java.nio.charset.StandardCharsets.UTF_8));
            w.write(header);
            w.write('\n');
            for (String r : rows) {
                w.write(r);
                w.write('\n');
            }
            w.flush();
        });
    }

    public static String cell(String s) {
        if (s == null) return "";
        // One record per line keeps the reports greppable: a multi-line message becomes one line.
        s = s.replace("\r\n", " ").replace('\n', ' ').replace('\r', ' ');
        boolean quote = s.indexOf(',') >= 0 || s.indexOf('"') >= 0;
        return quote ? '"' + s.replace("\"", "\"\"") + '"' : s;
    }

    /** Splits one line written by {@link #cell}: quoted cells may hold commas and doubled quotes (no newlines). */
    public static java.util.List<String> split(String line) {
        java.util.List<String> cells = new java.util.ArrayList<>();
        StringBuilder cur = new StringBuilder();
        boolean quoted = false;
        for (int i = 0; i < line.length(); i++) {
            char ch = line.charAt(i);
            if (quoted) {
                if (ch == '"' && i + 1 < line.length() && line.charAt(i + 1) == '"') {
                    cur.append('"');
                    i++;
                } else if (ch == '"') {
                    quoted = false;
                } else {
                    cur.append(ch);
                }
            } else if (ch == '"') {
                quoted = true;
            } else if (ch == ',') {
                cells.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(ch);
            }
        }
        cells.add(cur.toString());
        return cells;
    }
}
