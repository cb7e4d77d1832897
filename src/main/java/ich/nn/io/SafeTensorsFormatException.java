package ich.nn.io;

import java.io.IOException;

/** A file that is not a well-formed safetensors file (or checkpoint); the message names the file and the problem. */
public class SafeTensorsFormatException extends IOException {
    public SafeTensorsFormatException(String message) {
        super(message);
    }
}
