// Readiness probe: succeeds once the broker answers a real client metadata call.
// Run as a single-file program:
//   java -cp '<kafka libs>/*' Probe.java host:port[,...] seconds [nodes [client.properties]]
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public class Probe {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        if (args.length > 3) {
            try (java.io.FileInputStream in = new java.io.FileInputStream(args[3])) {
                props.load(in);
            }
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "3000");
        int want = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        try (Admin admin = Admin.create(props)) {
            while (true) {
                try {
                    int nodes = admin.describeCluster().nodes().get(3, TimeUnit.SECONDS).size();
                    if (nodes < want) throw new IllegalStateException(nodes + " of " + want + " nodes");
                    admin.listTopics().names().get(3, TimeUnit.SECONDS);
                    System.out.println("kafka ready: " + nodes + " node(s)");
                    return;
                } catch (Exception e) {
                    if (System.nanoTime() > deadline) {
                        System.err.println("kafka not ready: " + e);
                        System.exit(1);
                    }
                    Thread.sleep(250);
                }
            }
        }
    }
}
