package io.vltava.jvm;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;

import org.apache.kafka.common.message.ApiVersionsResponseData.ApiVersion;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.requests.AbstractRequest;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsRequest;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.RequestHeader;

/**
 * One plaintext connection speaking the Kafka protocol with the Java client's own request and
 * response classes, for APIs the Admin client only uses implicitly (or falls back from).
 */
public final class KafkaWire implements AutoCloseable {
    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private int correlationId;

    public KafkaWire(String host, int port) {
        try {
            socket = new Socket();
            socket.connect(new InetSocketAddress(host, port), 5_000);
            socket.setSoTimeout(15_000);
            in = new DataInputStream(socket.getInputStream());
            out = new DataOutputStream(socket.getOutputStream());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Sends {@code builder}'s request at {@code version} and parses the answer. */
    @SuppressWarnings("unchecked")
    public <R extends AbstractResponse> R send(AbstractRequest.Builder<?> builder, short version) {
        RequestHeader header = new RequestHeader(builder.apiKey(), version, "vltava-jvm-test", ++correlationId);
        ByteBuffer req = builder.build(version).serializeWithHeader(header);
        try {
            out.writeInt(req.remaining());
            out.write(req.array(), req.arrayOffset() + req.position(), req.remaining());
            out.flush();
            int size = in.readInt();
            byte[] resp = new byte[size];
            in.readFully(resp);
            return (R) AbstractResponse.parseResponse(ByteBuffer.wrap(resp), header);
        } catch (IOException e) {
            throw new UncheckedIOException(builder.apiKey() + " v" + version + ": no answer", e);
        }
    }

    public ApiVersionsResponse apiVersions() {
        return send(new ApiVersionsRequest.Builder(), (short) 3);
    }

    /** The version range the broker advertises for {@code key}; fails when it is not advertised. */
    public ApiVersion advertised(ApiKeys key) {
        ApiVersion v = apiVersions().data().apiKeys().find(key.id);
        if (v == null) {
            throw new AssertionError(key + " (API key " + key.id + ") is not in the broker's ApiVersions response");
        }
        return v;
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
