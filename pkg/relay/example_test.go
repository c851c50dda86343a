package relay_test

import (
	"fmt"

	"github.com/relayctl/relayctl/pkg/relay"
)

func ExampleParseListen() {
	for _, s := range []string{"127.0.0.1:2525", "starttls://0.0.0.0:587", "tls://[::]:465"} {
		l, err := relay.ParseListen(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(l.Mode, l.Addr)
	}
	// Output:
	// plain 127.0.0.1:2525
	// starttls 0.0.0.0:587
	// tls [::]:465
}
