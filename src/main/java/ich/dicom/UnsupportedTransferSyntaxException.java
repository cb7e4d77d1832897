package ich.dicom;

/**
 * The data set is readable, but its Pixel Data uses a transfer syntax this reader does not decode
 * (HTJ2K, JPEG 2000 Part 2, video, or a UID it does not know).
 */
public final class UnsupportedTransferSyntaxException extends DicomFormatException {
    private final String uid;
    private final String syntaxName;

    public UnsupportedTransferSyntaxException(String file, String uid, String syntaxName) {
        super(file, -1, Tag.TRANSFER_SYNTAX_UID, "unsupported transfer syntax " + uid + " (" + syntaxName + ")");
        this.uid = uid;
        this.syntaxName = syntaxName;
    }

    public String uid() { return uid; }

    public String syntaxName() { return syntaxName; }

    @Override
    public String reason() { return "unsupported transfer syntax " + uid + " (" + syntaxName + ")"; }
}
